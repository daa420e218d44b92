"""Online endpoints as running things: deployment instances, the router, keys.

    instances  an instance of a deployment (a process or a container) and its state row
    local      instances as supervised processes on this machine
    docker     instances as containers of the deployment's image
    mount      a model's files laid out as Azure ML mounts them (AZUREML_MODEL_DIR)
    runtime    the serving packages a local instance adds to its environment
    probes     readiness and liveness checks over HTTP
    router     the endpoint's own process, routing requests by traffic weight
    keys       endpoint keys: kept in a private file, only their hashes in the state
    signing    the keys a token endpoint's tokens are signed with, in a private file;
               made with the endpoint's keys, rotated without a restart

`mlform.kinds.endpoint.kind` plans and applies endpoints with these; `mlform.serving`
is what runs inside each instance.
"""

from mlform.kinds.endpoint.kind import EndpointKind

KIND = EndpointKind()
