"""Training data: clip lists, cached audio features and the datasets the U-Net and SyncNet trainers read."""
