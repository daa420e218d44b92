"""`mlform agent`: the pull-based reconciler, as Flux and Argo CD are for Kubernetes.

It follows a branch of a git remote: on each new commit it validates, plans and applies,
and records the commit the state now reflects; between commits it plans again every
interval, heals drift, and runs the jobs of the schedules due (kinds/schedule).
`agent:` in workspace.yml (config/agentpolicy.py) says which changes wait for
`mlform agent approve`.

    checkout.py   the branch, fetched into a working folder
    loop.py       one reconciliation per tick; the metrics it keeps
    server.py     /healthz, /metrics and the webhook that wakes the loop
"""
