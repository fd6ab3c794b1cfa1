"""Plain `nn.Module`s: the set model over receivers and its loss. No Lightning, no I/O."""

from heimdall.models.localization_net import LocalizationNet, ModelConfig
from heimdall.models.loss import GaussianNLLLoss, gaussian_nll_2d

__all__ = ["LocalizationNet", "ModelConfig", "GaussianNLLLoss", "gaussian_nll_2d"]
