"""Online endpoints: deployments of registered models behind one address that routes by
traffic weight (blue/green), with keys, probes and data capture.

    spec       EndpointSpec, DeploymentSpec, Probe and their parsing
    assemble   an endpoint with the deployments in files of their own; names, traffic
    kind       the kind: plan (what runs is drift), apply (blue/green rollout), destroy
    instances  an instance of a deployment (a process or a container) and its state row
    targets    where instances run: local processes or docker containers
    local      instances as supervised processes on this machine
    docker     instances as containers of the deployment's image
    probes     readiness and liveness checks over HTTP
    routing    starting, watching and stopping the endpoint's router process
               (`mlform.serving.router` is the router itself)
    keys       endpoint keys: kept in a private file, only their hashes in the state
    signing    the keys a token endpoint's tokens are signed with, in a private file;
               made with the endpoint's keys, rotated without a restart
    managed    the signing key as a secret `mlform secrets rotate` rotates
    operations what `mlform endpoints …` does

`mlform.serving` is what runs inside each instance, and the router.
"""

from mlform.kinds.endpoint.declaring import DECLARING

__all__ = ["DECLARING"]
