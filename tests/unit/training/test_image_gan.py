"""image-gan on scikit-learn's real 8x8 digits: class-conditional samples, DP accounting,
artifacts."""

import gzip

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import training
from training.errors import ArtifactError, ConditionError
from training.generators.image_gan.recipe import auto_batch_size, auto_epochs
from training.images import ImageSet

pytestmark = pytest.mark.slow


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1) / 255.0


@pytest.fixture(scope="module")
def plain_gan(digits_split):
    """Without DP, 80 epochs (about 45 s on one core): plumbing and conditioning are
    checked here, DP's price in benchmarks/image_quality.py."""
    train, _ = digits_split
    spec = training.TrainSpec(
        generator="image-gan", dp=training.DPConfig(epsilon=None), epochs=80, seed=0
    )
    return training.fit(train, spec, public_classes=True)


def test_asked_label_is_what_a_real_digit_classifier_sees(plain_gan, digits_split):
    """Chance is 0.1: 300 images at accuracy 0.5 is 23 binomial standard deviations above
    it; the GAN reached 0.98 at 100 epochs and 0.20 at 30."""
    train, _ = digits_split
    classifier = LogisticRegression(max_iter=2000).fit(_flat(train.images), train.labels)
    drawn = [plain_gan.sample(30, label=k, seed=k) for k in range(10)]
    images = np.concatenate([d.images for d in drawn])
    assert images.shape == (300, 8, 8, 1) and images.dtype == np.uint8
    accuracy = (classifier.predict(_flat(images)) == np.repeat(np.arange(10), 30)).mean()
    assert accuracy >= 0.5, accuracy


def test_seeded_samples_repeat_and_the_artifact_round_trips(plain_gan, tmp_path):
    a, b = plain_gan.sample(100, seed=5), plain_gan.sample(100, seed=5)
    assert np.array_equal(a.images, b.images) and len(np.unique(a.labels)) >= 8
    plain_gan.save(tmp_path / "m")
    loaded = training.load(tmp_path / "m")
    assert loaded.name == "image-gan" and loaded.classes == plain_gan.classes
    assert np.array_equal(loaded.sample(20, seed=1).images, plain_gan.sample(20, seed=1).images)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ArtifactError):
        training.load(tmp_path / "m")
    with pytest.raises(ConditionError, match="'eleven'"):
        plain_gan.sample(1, label="eleven")


def test_dp_run_reports_at_most_its_epsilon(digits_split):
    train, _ = digits_split
    spec = training.TrainSpec(
        generator="image-gan", dp=training.DPConfig(epsilon=2.0), epochs=3, seed=1
    )
    model = training.fit(train, spec)
    p = model.privacy
    assert p.dp and p.epsilon <= 2.0 + 1e-9 and p.epsilon_preprocessing > 0
    assert p.steps > 0 and 0 < p.sample_rate < 1 and "epoch_losses" not in model.training
    assert "class frequencies" in p.private_metadata
    with pytest.raises(training.TrainingError, match="trains on images"):
        training.fit(None, spec)


def test_fashion_mnist_at_28x28_under_dp(fashion_mnist):
    """The 28x28 path on real clothing images: one DP epoch over 6,000 of them (quality at
    the defaults is benchmarks/image_quality.py's: TSTR/TRTR 0.81-0.85 at epsilon 10)."""
    subset = ImageSet(fashion_mnist.images[:6000], fashion_mnist.labels[:6000],
                      fashion_mnist.classes)  # fmt: skip
    spec = training.TrainSpec(
        generator="image-gan", dp=training.DPConfig(epsilon=10.0), epochs=1, seed=0
    )
    model = training.fit(subset, spec)
    p = model.privacy
    assert p.epsilon <= 10.0 + 1e-9 and model.summary.batch_size == 64
    assert abs(p.steps - 6000 / 64) <= 2  # one epoch of Poisson steps at rate 64/N (DP N)
    drawn = model.sample(50, label="trouser", seed=0)
    assert drawn.images.shape == (50, 28, 28, 1) and drawn.images.dtype == np.uint8
    assert {model.classes[k] for k in drawn.labels} == {"trouser"}
    # the defaults plan about 3,000 discriminator steps on the full 60,000
    epochs = auto_epochs(len(fashion_mnist), dp=True)
    assert 2_500 <= epochs * len(fashion_mnist) / auto_batch_size(60_000, dp=True) <= 3_500


def test_idx_reader_refuses_a_truncated_or_foreign_file(tmp_path):
    """load_idx reads the shipped files by their headers; a cut copy or a non-IDX file
    is an ImageDataError that names the file, not a reshape error."""
    from pathlib import Path

    from tests.conftest import FASHION_MNIST
    from training.images import ImageDataError, load_idx

    labels = Path(FASHION_MNIST) / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress((Path(FASHION_MNIST) / "t10k-images-idx3-ubyte.gz").read_bytes())
    cut = tmp_path / "cut-images"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageDataError, match="cut-images holds"):
        load_idx(cut, labels, [])
    headless = tmp_path / "headless-images"
    headless.write_bytes(raw[16:])  # the pixels without their header
    with pytest.raises(ImageDataError, match="headless-images is not an IDX file"):
        load_idx(headless, labels, [])
    whole = load_idx(Path(FASHION_MNIST) / "t10k-images-idx3-ubyte.gz", labels, ["x"] * 10)
    assert whole.images.shape == (10_000, 28, 28, 1) and len(whole.labels) == 10_000
