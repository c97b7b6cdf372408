"""Training data: preparing aligned clips from raw videos (`preprocess/`), the file list (`fileslist`), and what
the trainers read (clip lists, cached audio features, the U-Net and SyncNet datasets)."""
