"""Models of this domain arrive with its issue; see the README roadmap."""
