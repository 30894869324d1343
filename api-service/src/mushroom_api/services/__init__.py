"""Services: what routes call; they call the model, the catalog and the stores."""
