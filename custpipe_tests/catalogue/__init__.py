"""The bad-input catalogue: hostile inputs, each with the answer custpipe must give."""
