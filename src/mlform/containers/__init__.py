"""How mlform talks to a container engine: Docker, through its Python SDK (`docker`).

    engine   connect to the engine; turn the SDK's exceptions into mlform's errors
    wheels   what Python the base image has; download wheels for it on the host
    build    assemble a build context and build (and push) an image
    run      start, stop and read the logs of containers

Builds never reach the network: the environment's wheels are downloaded on this machine,
where pip has the user's index, certificates and credentials, and go into the build
context; the image installs them with `pip --no-index`. The SDK is an optional extra
(`mlform[docker]`) and is imported only once a function here is called.
"""
