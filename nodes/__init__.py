"""Node modules of the pack. The pure math modules import nothing from the host."""
