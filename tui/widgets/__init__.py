"""The TUI's widgets: seed editor with ghost text, candidates, variants, decoding controls, model card, charts."""
