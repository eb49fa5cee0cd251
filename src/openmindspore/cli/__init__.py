"""The ``oms`` command line; one ``cmd_<name>.py`` module per subcommand."""
