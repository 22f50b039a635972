"""Every error Tether reports to a caller, defined once.

Each error carries the Dapr `ERR_` code, the HTTP status and the gRPC status code, so that the
HTTP and gRPC adapters cannot disagree about what a failure means. Transports translate a
`TetherError` with `http_status`/`grpc_code`; nothing else maps errors.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class TetherError(Exception):
    """Base of all errors that reach a caller."""

    code: ClassVar[str] = "ERR_INTERNAL"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"errorCode": self.code, "message": self.message}


class BadRequest(TetherError):
    code = "ERR_MALFORMED_REQUEST"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class BodyTooLarge(TetherError):
    code = "ERR_BODY_TOO_LARGE"
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthorized(TetherError):
    code = "ERR_UNAUTHORIZED"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class NotFound(TetherError):
    code = "ERR_NOT_FOUND"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class Unavailable(TetherError):
    code = "ERR_UNAVAILABLE"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


# --- workflows -------------------------------------------------------------------------------


class WorkflowComponentNotFound(TetherError):
    code = "ERR_WORKFLOW_COMPONENT_NOT_FOUND"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class WorkflowNameMissing(TetherError):
    code = "ERR_WORKFLOW_NAME_MISSING"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InstanceIdInvalid(TetherError):
    code = "ERR_INSTANCE_ID_INVALID"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InstanceIdTooLong(TetherError):
    code = "ERR_INSTANCE_ID_TOO_LONG"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InstanceIdProvidedMissing(TetherError):
    code = "ERR_INSTANCE_ID_PROVIDED_MISSING"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InstanceNotFound(TetherError):
    """The text keeps the phrase the Durable Task SDKs look for to map this to `None`."""

    code = "ERR_INSTANCE_ID_NOT_FOUND"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no such instance exists: '{instance_id}'")
        self.instance_id = instance_id


class InstanceAlreadyExists(TetherError):
    code = "ERR_START_WORKFLOW"
    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, instance_id: str) -> None:
        super().__init__(
            f"an active workflow with ID '{instance_id}' already exists; "
            "terminate or purge it first, or choose another ID"
        )


class InstanceNotTerminal(TetherError):
    code = "ERR_PURGE_WORKFLOW"
    http_status = 400
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class RerunInvalid(TetherError):
    code = "ERR_RERUN_WORKFLOW"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class WorkItemUnknown(TetherError):
    """A worker completed something it was never given (or given and since taken back)."""

    code = "ERR_WORK_ITEM_UNKNOWN"
    http_status = 400
    grpc_code = grpc.StatusCode.NOT_FOUND


class WorkerResponseInvalid(TetherError):
    code = "ERR_WORKER_RESPONSE_INVALID"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class EventNameMissing(TetherError):
    code = "ERR_WORKFLOW_EVENT_NAME_MISSING"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class StaleTurn(TetherError):
    """Internal: a commit lost the race with another writer of the same instance."""

    code = "ERR_WORKFLOW_CONFLICT"
    http_status = 409
    grpc_code = grpc.StatusCode.ABORTED


class StoreError(TetherError):
    code = "ERR_WORKFLOW_STORE"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


# --- pub/sub ---------------------------------------------------------------------------------
# Codes, HTTP statuses and gRPC codes as daprd reports them (dapr/dapr pkg/api/errors/pubsub.go).


class PubSubNotFound(TetherError):
    code = "ERR_PUBSUB_NOT_FOUND"
    http_status = 404
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PubSubNotConfigured(TetherError):
    code = "ERR_PUBSUB_NOT_CONFIGURED"
    http_status = 400
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class PubSubNameEmpty(TetherError):
    code = "ERR_PUBSUB_EMPTY"
    http_status = 404
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PubSubTopicEmpty(TetherError):
    code = "ERR_TOPIC_NAME_EMPTY"
    http_status = 404
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PubSubForbidden(TetherError):
    code = "ERR_PUBSUB_FORBIDDEN"
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class PubSubMetadataInvalid(TetherError):
    """Publish metadata the broker cannot use (e.g. a non-numeric `ttlInSeconds`)."""

    code = "ERR_PUBSUB_REQUEST_METADATA"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PubSubPublishFailed(TetherError):
    """The broker refused the message or could not be reached; it may or may not be stored."""

    code = "ERR_PUBSUB_PUBLISH_MESSAGE"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class PubSubUnavailable(TetherError):
    """The broker could not be reached to subscribe or initialise."""

    code = "ERR_PUBSUB_UNAVAILABLE"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


class PubSubComponentInvalid(TetherError):
    """A pub/sub component's metadata is wrong; raised while loading it, never per request."""

    code = "ERR_PUBSUB_COMPONENT_INVALID"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


# --- state -----------------------------------------------------------------------------------
# Codes, HTTP statuses and gRPC codes as daprd reports them (dapr/dapr pkg/api/http/http.go
# `etagError`, pkg/api/grpc/grpc.go `getStateErrorCode`, pkg/api/errors/state.go).


class ETagMismatch(TetherError):
    """A write's etag is not the stored one, or a first-write without etag found the key taken."""

    code = "ERR_STATE_SAVE"
    http_status = 409
    grpc_code = grpc.StatusCode.ABORTED


class ETagInvalid(TetherError):
    """An etag that this store could never have issued (wrong format)."""

    code = "ERR_STATE_SAVE"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class DeleteETagMismatch(ETagMismatch):
    code = "ERR_STATE_DELETE"


class DeleteETagInvalid(ETagInvalid):
    code = "ERR_STATE_DELETE"


class QueryUnsupported(TetherError):
    """The state store has no Query API (it lacks the `QUERY_API` feature)."""

    code = "ERR_STATE_STORE_NOT_SUPPORTED"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class QueryInvalid(TetherError):
    """A state query that does not follow the Dapr state query language."""

    code = "ERR_STATE_QUERY"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class StateStoreFailed(TetherError):
    """The backing store failed or could not be reached; the operation may not have happened."""

    code = "ERR_STATE_STORE"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class StateComponentInvalid(TetherError):
    """A state component's metadata is wrong; raised while building or initialising it."""

    code = "ERR_STATE_COMPONENT_INVALID"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


# --- resources -------------------------------------------------------------------------------


class ResourceInvalid(TetherError):
    """A resource document (YAML) that cannot be used; the message names the file and field."""

    code = "ERR_RESOURCE_INVALID"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
