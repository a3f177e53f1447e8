"""The TUI's screens: compose (home), train, models, help, and small dialogs."""
