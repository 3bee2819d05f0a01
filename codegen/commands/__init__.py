"""One module per CLI command. Each defines `COMMAND` (its name), `HELP` (one line),
`add_arguments(parser)` and `run(args)`; `codegen.cli` finds them by listing this package.

Modules import their heavy dependencies inside `run`, so `codegen --help` stays fast and
no command pays for another's imports.
"""
