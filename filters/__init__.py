"""Document decisions, one module per kind; each is a datatrove step that records why it removed a document."""
