"""The durable workflow engine and the Durable Task protocol it speaks."""
