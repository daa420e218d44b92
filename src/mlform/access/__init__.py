"""Who may call mlform's own HTTP servers, and the audit log of what was done.

    roles.py      reader < operator < admin, as Azure ML's Reader, AzureML Data Scientist
                  and Owner built-in roles
    durations.py  `30d`, `12h`, `2s`, `never`; `--since 7d | 2026-12-01`
    tokens.py     API tokens `mlf_<id>_<secret>`: made, hashed (scrypt, a salt each), checked
    tokenfile.py  the servers' copy of the token hashes (`access/tokens.json`, 0600),
                  reloaded when it changes
    journal.py    what servers saw (denials, invocations, token use), appended to
                  `access/journal.jsonl` (0600) until a command that writes the state
                  ingests it
    gate.py       a request's credential → a Principal (name, role), or why not
    guard.py      the Starlette middleware: a role per route, checked before any body
    audit.py      audit events in the state's `events` table; ingesting the journal; listing
    actor.py      who applies: the git author of a clean commit, else the OS user
    manage.py     `mlform tokens create|list|revoke`: the state's `tokens` table

Scoring routes are not here: online endpoints keep Azure ML's endpoint keys and tokens.
"""
