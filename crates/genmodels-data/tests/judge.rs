//! The shipped judge: its weights load, classify the bundled test digits as well as
//! docs/sample-quality.md says, and give real images the metric floors recorded there.

use genmodels_core::burn::tensor::Device;
use genmodels_data::{Binarization, Mnist, mnist_judge};
use genmodels_eval::quality::{GaussianFit, SampleQuality, classifier_accuracy, frechet_distance};

/// The seed of the one stochastic binarisation of the test split that `genmodels train`,
/// `eval` and `train-judge` score on.
const TEST_BINARIZATION_SEED: u64 = 0x7E57;

#[test]
fn the_shipped_judge_classifies_grey_and_binarised_test_digits() {
    let device = Device::flex();
    let judge = mnist_judge(&device).unwrap();
    let test = Mnist::bundled().unwrap().test;
    let grey = test.clone().with_binarization(Binarization::None);
    let binary = test.with_binarization(Binarization::Stochastic {
        seed: TEST_BINARIZATION_SEED,
    });
    let grey_accuracy = classifier_accuracy(judge.classifier(), &grey, 500, &device).unwrap();
    let binary_accuracy = classifier_accuracy(judge.classifier(), &binary, 500, &device).unwrap();
    // Measured when the weights were made: 99.15% grey, 98.55% binarised.
    assert!(grey_accuracy >= 0.97, "grey test accuracy {grey_accuracy}");
    assert!(
        binary_accuracy >= 0.97,
        "binarised test accuracy {binary_accuracy}"
    );
}

#[test]
fn real_digits_score_near_the_floor_and_a_single_digit_does_not() {
    let device = Device::flex();
    let judge = mnist_judge(&device).unwrap();
    let mnist = Mnist::bundled().unwrap();
    let train = judge
        .judge_dataset(
            &mnist.train.clone().with_binarization(Binarization::None),
            None,
            &device,
        )
        .unwrap();
    let test = judge
        .judge_dataset(
            &mnist.test.clone().with_binarization(Binarization::None),
            None,
            &device,
        )
        .unwrap();
    let reference = GaussianFit::of(&train).unwrap();
    let real = SampleQuality::measure_against(&test, &reference).unwrap();
    eprintln!("real test vs real train: {real:?}");
    assert_eq!(real.coverage.classes_hit, 10);
    assert!(real.inception_score > 8.5, "{real:?}");
    assert!(real.coverage.kl_to_uniform < 0.02, "{real:?}");

    // Binarised test digits against the grey training digits: what a perfect Bernoulli model
    // would score, and against binarised training digits.
    let stochastic = |seed| Binarization::Stochastic { seed };
    let binary = judge
        .judge_dataset(
            &mnist
                .test
                .clone()
                .with_binarization(stochastic(TEST_BINARIZATION_SEED)),
            None,
            &device,
        )
        .unwrap();
    let binary_real = SampleQuality::measure_against(&binary, &reference).unwrap();
    eprintln!("binarised test vs grey train: {binary_real:?}");
    assert_eq!(binary_real.coverage.classes_hit, 10);
    assert!(binary_real.inception_score > 8.5, "{binary_real:?}");
    let binary_train = judge
        .judge_dataset(
            &mnist.train.clone().with_binarization(stochastic(1)),
            None,
            &device,
        )
        .unwrap();
    let binary_floor = frechet_distance(
        &GaussianFit::of(&binary).unwrap(),
        &GaussianFit::of(&binary_train).unwrap(),
    )
    .unwrap();
    eprintln!("binarised test vs binarised train: FID {binary_floor}");
    let binary_fid = binary_real.fid.max(binary_floor);

    // "Samples" that are all ones: one mode, far from the data.
    let ones: Vec<usize> = (0..mnist.test.len())
        .filter(|&i| mnist.test.labels().unwrap()[i] == 1)
        .collect();
    let ones_set = genmodels_data::ImageSet::new(
        mnist.test.shape(),
        ones.iter()
            .flat_map(|&i| mnist.test.image(i).to_vec())
            .collect(),
        Some(vec![1; ones.len()]),
    )
    .unwrap()
    .with_binarization(Binarization::None);
    let collapsed = judge.judge_dataset(&ones_set, None, &device).unwrap();
    let collapsed = SampleQuality::measure_against(&collapsed, &reference).unwrap();
    eprintln!("test ones vs real train: {collapsed:?}");
    assert_eq!(collapsed.coverage.classes_hit, 1);
    assert!(collapsed.inception_score < 1.5);
    assert!(
        collapsed.fid > 10.0 * real.fid.max(binary_fid),
        "{collapsed:?} vs {real:?}"
    );
}
