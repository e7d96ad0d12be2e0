"""The pure workflow state machine: history and inbox in, new history and effects out. No I/O, no clock."""
