"""The model registry: every registered model has a golden parameter count, reached through the
example inputs it registered with its name."""

import dataclasses

import flax.linen as nn
import pytest

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import dcgan

# Parameter counts at each registered model's default width, on Fashion-MNIST-shaped images.
# For 64x64x3 the DCGAN paper's networks have 3,576,704 (G) and 2,765,568 (D) parameters;
# ours add the biases of the layers without BatchNorm (G: 3, D: 64 + 1).
GOLDEN_PARAM_COUNTS = {
    "dcgan_generator": (dict(image_size=28, channels=1), 759_681),
    "dcgan_discriminator": (dict(image_size=28, channels=1), 138_689),
    "conv_vae": (dict(image_size=28, channels=1), 1_700_609),
    # Counted by hand: dense 809,088 + 2 up-blocks of 312,192 + BN 256 + conv 1,153.
    "resnet_generator": (dict(image_size=28, channels=1), 1_434_881),
    # First block 149,120 + a down-block 311,680 + an identity block 295,168 + head 129.
    "resnet_discriminator": (dict(image_size=28, channels=1), 756_097),
    # Fully convolutional (no image_size); 256-way output per sub-pixel. Masked-out kernel
    # taps are stored, so they count.
    # Counted by hand: encoder convs 544 + 32,832, dense 803,072, q(z2) 16,448, top-down
    # 103,488, p(z1|z2) 9,232, q(z1|·) 18,448, merge 41,536, decoder 32,800 + 513.
    "hvae": (dict(image_size=28, channels=1), 1_058_913),
    # 544 + 32,832 down, 1,040 to codes, 9,280 from codes, 32,800 + 15,390 up (a 10-logistic
    # mixture, 30 per pixel); the 256 x 16 codebook is state (batch_stats), not parameters.
    "vqvae": (dict(image_size=28, channels=1), 91_886),
    "pixelcnn": (dict(channels=1), 479_744),
    "gated_pixelcnn": (dict(channels=1), 1_104_320),
    "row_lstm": (dict(channels=1), 729_344),
    # The paper's CIFAR-10 widths (160, 5 blocks; the model's defaults), 10 logistics (30):
    # first convs 4,000; up-pass blocks 15 × (u 922,080 + ul 666,240); down-pass blocks 17 ×
    # (u 973,440 + ul 717,440), whose shortcut 1x1s read u's (and u's and ul's) concat-ELU;
    # strided and transposed convs 2 × 2 × 256,320; output 160 × 30 + 30.
    "pixelcnnpp_unet": (dict(channels=1), 53_603_870),
    # Residual blocks: down 1,594,368, middle 722,944, up 3,668,288; 6 attention blocks of
    # 66,304; down/upsampling convs 184,512 + 295,168; noise MLP 82,432; in/out 640 + 705.
    "unet": (dict(image_size=28, channels=1), 6_946_881),
    # ×4, width 64: first conv 640, 8 residual blocks of 73,857 (two convs and a PReLU), the
    # trunk's closing conv 36,928, two ×2 sub-pixel stages of 147,713, last conv 577, PReLU 1.
    "srresnet": (dict(channels=1), 924_428),
}
DCGAN_64_PARAM_COUNTS = {"dcgan_generator": 3_576_707, "dcgan_discriminator": 2_765_633}
# Models with a num_classes field: their example inputs must carry labels when it is > 0.
_CONDITIONAL = [name for name in models.names()
                if "num_classes" in {f.name for f in dataclasses.fields(models.get(name))}]


def test_every_registered_model_has_a_golden_param_count():
  assert set(models.names()) == set(GOLDEN_PARAM_COUNTS)


@pytest.mark.parametrize("name", models.names())
def test_param_count_matches_golden(name):
  kwargs, expected = GOLDEN_PARAM_COUNTS[name]
  assert models.param_count(name, **kwargs) == expected


@pytest.mark.parametrize("name", sorted(DCGAN_64_PARAM_COUNTS))
def test_dcgan_64_param_count(name):
  assert models.param_count(name, image_size=64, channels=3) == DCGAN_64_PARAM_COUNTS[name]


def test_conditional_models_are_found():
  assert set(_CONDITIONAL) == {"dcgan_generator", "dcgan_discriminator", "resnet_generator",
                               "resnet_discriminator", "pixelcnn", "gated_pixelcnn", "row_lstm",
                               "pixelcnnpp_unet",
                               "unet"}


@pytest.mark.parametrize("name", _CONDITIONAL)
def test_conditional_example_inputs_carry_labels(name):
  # Without labels a conditional model raises; with them it gains its label embeddings.
  kwargs, unconditional = GOLDEN_PARAM_COUNTS[name]
  assert models.param_count(name, **kwargs, num_classes=10) > unconditional


def test_example_inputs_follow_the_module_fields():
  generator = dcgan.Generator(image_size=32, channels=3, latent_dim=7, num_classes=5)
  (z, labels), kwargs = models.example_inputs("dcgan_generator", generator, batch=3)
  assert z.shape == (3, 7) and labels.shape == (3,) and kwargs == {"train": False}
  (x, labels), _ = models.example_inputs("dcgan_discriminator",
                                         dcgan.Discriminator(image_size=32, channels=3), batch=3)
  assert x.shape == (3, 32, 32, 3) and labels is None


def test_example_inputs_of_another_model_is_an_error():
  with pytest.raises(TypeError, match="got a Discriminator: expected an instance of Generator"):
    models.example_inputs("dcgan_generator", dcgan.Discriminator(image_size=28, channels=1))


class _Unregistered(nn.Module):
  pass


def test_registering_without_example_inputs_is_an_error():
  with pytest.raises(TypeError, match="example_inputs"):
    models.register("unregistered")(_Unregistered)
  with pytest.raises(TypeError, match="'unregistered': example_inputs=None is not callable"):
    models.register("unregistered", example_inputs=None)(_Unregistered)
  assert "unregistered" not in models.names()


def test_registering_a_name_twice_is_an_error():
  with pytest.raises(ValueError, match="'dcgan_generator' is registered twice"):
    models.register("dcgan_generator", example_inputs=lambda module, batch: ((), {}))(
        _Unregistered)
  assert models.get("dcgan_generator") is dcgan.Generator


def test_unknown_model_names_the_known_ones():
  with pytest.raises(UserError, match="'dcgan'.*conv_vae, dcgan_discriminator, dcgan_generator, "
                     "gated_pixelcnn, hvae, pixelcnn, pixelcnnpp_unet, resnet_discriminator, "
                     "resnet_generator, row_lstm, srresnet, unet, vqvae"):
    models.get("dcgan")
