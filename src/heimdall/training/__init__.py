"""The LightningModule and the Trainer factory."""
