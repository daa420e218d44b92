"""The kinds of resource, a package each, over the generic core.

Each package holds everything that is only about its kind: the spec and how it is
parsed, checked and resolved, what `desire` digests, how it is applied and destroyed,
and the code only it runs (an endpoint's instances and router, a pipeline's steps). Its
`KIND` implements `mlform.kind.Kind`; `mlform.config.kinds.REGISTERED` names it.
"""
