"""One module per `devagen` command: each DVC stage's glue (stages/<name>.py runs commands/<name>.py), and
`generate`. A command imports the library inside its function, so `devagen --help` stays free of torch."""
