"""Image evaluation on scikit-learn's real 8x8 digits: real unseen images pass, copies of
the training images fail, and noise is told apart by utility and the Frechet distance."""

import numpy as np
import pytest

from evaluation.images import LabeledImages, evaluate_images

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def three_real_sets(digits):
    """Disjoint train (900), holdout (448) and a third real set (449) posing as synthetic."""
    order = np.random.default_rng(1).permutation(len(digits))
    names = np.asarray(digits.classes, dtype=object)

    def part(index):
        return LabeledImages(digits.images[index], names[digits.labels[index]])

    return part(order[:900]), part(order[900:1348]), part(order[1348:])


def test_unseen_real_images_score_like_real_data_and_pass_every_gate(three_real_sets):
    train, holdout, other = three_real_sets
    result = evaluate_images(train, holdout, other, CLASSES)
    assert result.trtr_accuracy > 0.9 and result.tstr_ratio > 0.85
    assert result.frechet_synthetic < 3 * result.frechet_real + 1.0
    assert result.memorization.exact_copy_rate == 0.0
    assert 0.35 < result.memorization.dcr_share < 0.65
    assert result.passed, [g for g in result.gates if g.status == "fail"]
    assert result.as_dict()["utility"]["tstr_ratio"] == result.tstr_ratio


def test_training_images_offered_as_synthetic_fail_the_memorization_gates(three_real_sets):
    train, holdout, _ = three_real_sets
    copies = LabeledImages(train.images[:450], train.labels[:450])
    result = evaluate_images(train, holdout, copies, CLASSES)
    failed = {g.name for g in result.gates if g.status == "fail"}
    assert {"exact_copies", "dcr_share", "membership_inference"} <= failed
    assert result.memorization.exact_copy_rate == 1.0
    assert result.closest_pairs[0][2] == 0.0  # the owner's grid starts with a copy


def test_shuffled_pixels_lose_utility_and_sit_far_in_feature_space(three_real_sets):
    train, holdout, other = three_real_sets
    rng = np.random.default_rng(0)
    noise = np.stack([rng.permutation(im.reshape(-1)).reshape(im.shape) for im in other.images])
    result = evaluate_images(train, holdout, LabeledImages(noise, other.labels), CLASSES)
    assert result.tstr_accuracy < 0.35  # chance is 0.1
    assert result.frechet_synthetic > 5 * result.frechet_real


def test_the_report_can_leave_the_real_training_images_out(three_real_sets):
    """The closest synthetic-train pairs show real training images (a disclosure outside
    epsilon, owners and auditors only); the owner can leave them out (issue 19, A7)."""
    from evaluation.images import image_report_data
    from evaluation.report import render_html

    train, holdout, other = three_real_sets
    result = evaluate_images(train, holdout, other, CLASSES)
    shown = image_report_data(result, train=train, synthetic=other, classes=CLASSES, privacy=None)
    hidden = image_report_data(
        result, train=train, synthetic=other, classes=CLASSES, privacy=None,
        show_real_images=False,
    )  # fmt: skip
    assert shown["figures"]["closest_pairs"] and "Disclosure outside epsilon" in render_html(shown)
    assert hidden["figures"]["closest_pairs"] is None and hidden["closest_pairs"]
    page = render_html(hidden)
    assert "left out of this report" in page and "closest synthetic-train pairs" not in page


def test_an_image_report_is_held_to_its_json_schema(three_real_sets):
    """Image reports have a schema of their own, as table reports do (issue 20, item 4):
    a real report validates; one with a gate status outside pass/fail/not_run, or a
    closest pair at a negative distance, does not."""
    import copy

    from evaluation.images import image_report_data
    from evaluation.report import ReportError, validate_report

    train, holdout, other = three_real_sets
    result = evaluate_images(train, holdout, other, CLASSES)
    report = image_report_data(result, train=train, synthetic=other, classes=CLASSES, privacy=None)
    validate_report(report)
    bad_gate = copy.deepcopy(report)
    bad_gate["gates"][0]["status"] = "maybe"
    bad_pair = copy.deepcopy(report)
    bad_pair["closest_pairs"][0]["distance"] = -1.0
    for bad in (bad_gate, bad_pair):
        with pytest.raises(ReportError, match="images schema"):
            validate_report(bad)
