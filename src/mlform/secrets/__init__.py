"""Workspace secrets: declared in workspace.yml, referenced as `${{secrets.NAME}}`, read
only where a process starts, and seen by plans and the state only as fingerprints.

    declared     the `secrets:` of workspace.yml
    sources      where a value is kept: env, file, age (one class each)
    age          age encryption for secrets committed with the workspace
    references   where `${{secrets.NAME}}` may be written, and who uses what
    vault        values, read once each when first needed, kept in memory only
    fingerprint  HMAC fingerprints that let a plan see a change
    managed      secrets mlform makes itself (an endpoint's token-signing key)
    operations   list, set and rotate, for `mlform secrets`
"""
