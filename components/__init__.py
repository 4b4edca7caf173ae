"""Pulumi ComponentResources of the fleet, one concern per file.

Conventions: type tokens `fleet:<module>:<Type>`, the
`(name, args, opts)` signature with a typed `@dataclass` Args, `parent=self` on every child,
children kept as attributes (tests and the next issue's Rollout reach them there),
`register_outputs` last, and no resource created inside an `apply`.

Logical names start with the group's `slug()` so every derived AWS name is valid, and never
depend on list positions of other groups: adding or removing a group moves nothing else.
"""
