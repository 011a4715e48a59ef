"""Self-supervised pretraining of the backbones on unlabeled images (FCMAE)."""
from .fcmae import FCMAE, MaskedGRN

__all__ = ['FCMAE', 'MaskedGRN']
