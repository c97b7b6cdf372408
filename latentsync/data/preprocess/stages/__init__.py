"""One module per data-preparation stage; `preprocess.video` chains them for one input."""
