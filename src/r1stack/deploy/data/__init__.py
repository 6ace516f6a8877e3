"""Data files of the deploy layer: the model and hardware catalogues and the deployment guide's claims."""
