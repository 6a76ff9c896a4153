"""The composition root: builds every part from the settings and owns start-up, leadership and
shutdown; the HTTP app and the CLI commands get what they need from here."""
