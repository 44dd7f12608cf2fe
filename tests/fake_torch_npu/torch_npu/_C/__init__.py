"""Stand-in for torch_npu's compiled extension."""
