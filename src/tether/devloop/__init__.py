"""The dev loop behind `tether run`: run files, the dev server, app processes."""
