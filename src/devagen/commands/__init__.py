"""One module per `devagen` command: each DVC stage's glue (stage <name> runs `devagen <name>`, this package's <name>.py), and
`generate`. A command imports the library inside its function, so `devagen --help` stays free of torch."""
