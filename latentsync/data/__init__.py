"""Training data: preparing clips from raw videos (`preprocess`) and the file list the trainer reads (`fileslist`)."""
