"""`mlform studio`: the workspace as a web page (`app` lists the pages). Read-only: it
opens the state as every reader does, so it never holds up an apply."""
