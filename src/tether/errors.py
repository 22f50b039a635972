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


class AdminUnauthorized(TetherError):
    """A management request (/v1.0-tether/...) without the server's admin token. 401 for a
    missing and a wrong token alike, as daprd answers a bad `dapr-api-token`."""

    code = "ERR_ADMIN_UNAUTHORIZED"
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


class PubSubCloudEventInvalid(TetherError):
    """A `application/cloudevents+json` publish whose body is not a JSON object."""

    code = "ERR_PUBSUB_CLOUD_EVENTS_SER"
    http_status = 500
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PubSubEventsInvalid(TetherError):
    """A bulk publish request that cannot be read: bad JSON, entry ids missing or repeated,
    an event that does not fit its content type."""

    code = "ERR_PUBSUB_EVENTS_SER"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


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


# --- service invocation ----------------------------------------------------------------------
# daprd reports every invocation failure as ERR_DIRECT_INVOKE (dapr/dapr pkg/messages
# predefined.go); the message says what went wrong.


class DirectInvokeFailed(TetherError):
    """The target app could not be reached or does not exist (daprd: 500, gRPC INTERNAL)."""

    code = "ERR_DIRECT_INVOKE"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL

    def __init__(self, app_id: str, reason: str) -> None:
        super().__init__(f"failed to invoke, id: {app_id}, err: {reason}")


class DirectInvokeNoAppId(TetherError):
    code = "ERR_DIRECT_INVOKE"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class AppUnhealthy(DirectInvokeFailed):
    """The app's health checks fail. daprd answers 500 here; 503 tells the caller to back off."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


class InvokeTimedOut(DirectInvokeFailed):
    """A resiliency timeout expired (daprd: 500 over HTTP, DEADLINE_EXCEEDED over gRPC)."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class CircuitOpen(DirectInvokeFailed):
    """A circuit breaker is open (or half-open and full): the call was not attempted."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class ProxyAppNotFound(DirectInvokeFailed):
    """gRPC proxying to an App ID this runtime does not serve (daprd hands back its name
    resolver's error, which gRPC reports as UNKNOWN)."""

    grpc_code = grpc.StatusCode.UNKNOWN


class ProxyAppNotGrpc(DirectInvokeFailed):
    """gRPC proxying to an App ID without a gRPC app (no app port, or `appProtocol` http);
    daprd's call to such an app fails as UNAVAILABLE."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


# --- apps ------------------------------------------------------------------------------------


class AppNotFound(TetherError):
    code = "ERR_APP_NOT_FOUND"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class AppInvalid(TetherError):
    code = "ERR_APP_INVALID"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


# --- jobs ------------------------------------------------------------------------------------
# Codes as daprd reports them (dapr/dapr pkg/messages/errorcodes, pkg/api/errors/scheduler.go).


class JobNameEmpty(TetherError):
    code = "DAPR_SCHEDULER_JOB_NAME_EMPTY"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class JobScheduleEmpty(TetherError):
    code = "DAPR_SCHEDULER_SCHEDULE_EMPTY"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class JobNameInBody(TetherError):
    code = "DAPR_SCHEDULER_JOB_NAME"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class JobInvalid(TetherError):
    """A schedule, due time, TTL or repeat count that cannot be used."""

    code = "DAPR_SCHEDULER_SCHEDULE_JOB"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class JobExists(TetherError):
    code = "DAPR_SCHEDULER_SCHEDULE_JOB"
    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class JobNotFound(TetherError):
    """daprd wraps this in a 500; a 404 says what happened."""

    code = "DAPR_SCHEDULER_GET_JOB"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class JobStoreFailed(TetherError):
    code = "DAPR_SCHEDULER_SCHEDULE_JOB"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class ComponentInvalid(TetherError):
    """A component's metadata is wrong (any building block); raised while building it."""

    code = "ERR_COMPONENT_INVALID"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


# --- state API -------------------------------------------------------------------------------
# What the state API reports around the stores' own errors (dapr/dapr pkg/api/errors/state.go,
# pkg/api/http/http.go, pkg/api/grpc/grpc.go).


class StateStoresNotConfigured(TetherError):
    code = "ERR_STATE_STORE_NOT_CONFIGURED"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class StateStoreNotFound(TetherError):
    code = "ERR_STATE_STORE_NOT_FOUND"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class StateGetFailed(TetherError):
    code = "ERR_STATE_GET"


class StateBulkGetFailed(TetherError):
    code = "ERR_STATE_BULK_GET"


class StateSaveFailed(TetherError):
    code = "ERR_STATE_SAVE"


class StateDeleteFailed(TetherError):
    code = "ERR_STATE_DELETE"


class StateBulkDeleteFailed(TetherError):
    code = "ERR_STATE_BULK_DELETE"


class StateTransactionFailed(TetherError):
    """Any failing transaction, etag conflicts included: daprd reports them all as 500."""

    code = "ERR_STATE_TRANSACTION"


class StateTransactionsUnsupported(TetherError):
    code = "ERR_STATE_STORE_NOT_SUPPORTED"
    http_status = 500
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class StateOperationUnsupported(TetherError):
    """A transaction operation other than upsert or delete."""

    code = "ERR_NOT_SUPPORTED_STATE_OPERATION"
    http_status = 400
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


# --- secrets ---------------------------------------------------------------------------------
# dapr/dapr pkg/messages/predefined.go: daprd answers an unknown secret store with 401.


class SecretStoresNotConfigured(TetherError):
    code = "ERR_SECRET_STORES_NOT_CONFIGURED"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class SecretStoreNotFound(TetherError):
    code = "ERR_SECRET_STORE_NOT_FOUND"
    http_status = 401
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class SecretGetFailed(TetherError):
    """The store could not answer, or has no such secret."""

    code = "ERR_SECRET_GET"


# --- configuration ---------------------------------------------------------------------------


class ConfigurationStoresNotConfigured(TetherError):
    code = "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class ConfigurationStoreNotFound(TetherError):
    code = "ERR_CONFIGURATION_STORE_NOT_FOUND"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class ConfigurationGetFailed(TetherError):
    code = "ERR_CONFIGURATION_GET"


class ConfigurationSubscribeFailed(TetherError):
    code = "ERR_CONFIGURATION_SUBSCRIBE"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class ConfigurationUnsubscribeFailed(TetherError):
    code = "ERR_CONFIGURATION_UNSUBSCRIBE"


class AppChannelMissing(TetherError):
    """A feature that calls into the app was used by an App ID without an app endpoint."""

    code = "ERR_APP_CHANNEL_NIL"


# --- distributed lock ------------------------------------------------------------------------


class LockStoresNotConfigured(TetherError):
    code = "ERR_LOCK_STORE_NOT_CONFIGURED"
    http_status = 500
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class LockStoreNotFound(TetherError):
    code = "ERR_LOCK_STORE_NOT_FOUND"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class TryLockFailed(TetherError):
    code = "ERR_TRY_LOCK"


class UnlockFailed(TetherError):
    code = "ERR_UNLOCK"


# --- bindings --------------------------------------------------------------------------------


class BindingInvokeFailed(TetherError):
    """Unknown binding, unsupported operation or a failing target: daprd reports all as 500."""

    code = "ERR_INVOKE_OUTPUT_BINDING"


class StateQueryFailed(TetherError):
    code = "ERR_STATE_QUERY"
