"""``ember.utils``: PyTorch's ``torch.utils`` names (``ember.utils.data``)."""
