"""Side-by-side reference: genmodels (burn, flex backend) against PyTorch on the CPU.

First proves the PyTorch networks are genmodels' own: `reference_export` writes our weights
(burn's safetensors store) and what genmodels computes on a fixed batch; PyTorch loads the
weights and must compute the same numbers. Then times both sides, alternating: for each
repetition and each (model, op), `genmodels bench` and `torch_bench.py` run back to back,
each in a fresh process. Reports the median images/s of each side, the ratio
genmodels/PyTorch, and peak memory, as a Markdown table and a JSON file.

    python benches/reference/runner.py --repetitions 5 --out results.json

On a GPU, `--backend wgpu` (or `cuda`) runs genmodels there and `--torch-device cuda` PyTorch;
`--batch 256` times every job at a batch a GPU wants (benches/gpu/run.sh does both).

Exits non-zero when the agreement check fails (before any timing).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import torch

import flops
import models

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = models.REPO

# Agreement tolerances (max abs difference over the 32 images), see README.md.
LL_TOLERANCE = 1e-3  # nats per image: autoregressive log p(x), VAE log p(x|z) and KL
DCGAN_TOLERANCE = 1e-4  # raw discriminator outputs and the two losses (values of order 1)
DDPM_NOISY_TOLERANCE = 1e-6  # x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, |x_t| < 5
DDPM_EPS_TOLERANCE = 1e-5  # eps_theta(x_t, t) per pixel (values up to ~0.4)
DDPM_LOSS_TOLERANCE = 1e-5  # L_simple of the batch (~0.88)
DDPM_DDIM_TOLERANCE = 1e-4  # DDIM's last image, in [-1, 1], after 50 network passes

# Above this 1-minute load average at the start the runner warns that timings are unfair.
BUSY_LOAD = 0.5

# The autoregressive models, by the CLI's names: their twins are checked and timed alike.
AUTOREGRESSIVE = ["pixelcnn", "gated-pixelcnn", "row-lstm", "diagonal-bilstm"]

# (model, genmodels op, PyTorch op, batch). The PyTorch PixelCNN samples only the naive way;
# both genmodels samplers are compared with it. The other autoregressive twins are not timed
# sampling: one forward pass per pixel of an LSTM is minutes per run.
JOBS = (
    [(model, "train_step", "train_step", 32) for model in AUTOREGRESSIVE]
    + [
        ("vae", "train_step", "train_step", 32),
        ("dcgan", "train_step", "train_step", 32),
    ]
    + [(model, "log_likelihood", "log_likelihood", 32) for model in AUTOREGRESSIVE]
    + [
        ("pixelcnn", "sample_cached", "sample_naive", 16),
        ("pixelcnn", "sample_naive", "sample_naive", 16),
    ]
    # The DDPM: L_simple's step (with the moving average's update); its fast sampler, DDIM
    # with 50 steps (eta = 0), on both sides; its slow one, the T = 1000 ancestral steps.
    + [
        ("ddpm", "train_step", "train_step", 32),
        ("ddpm", "sample_cached", "sample_cached", 16),
        ("ddpm", "sample_naive", "sample_naive", 16),
    ]
)
# Untimed runs before the timed ones, unless --warm-up says otherwise: each tool's default
# (1), except for naive sampling, whose one run is 784 forward passes and warms itself up.
WARM_UP = {"sample_naive": 0}


# ---------------------------------------------------------------------------------------------
# Agreement check


def export(args, out_dir):
    if args.export_bin:
        command = [args.export_bin, out_dir]
    else:
        command = [
            "cargo", "run", "--quiet", "--release", "-p", "genmodels",
            "--example", "reference_export", "--", out_dir,
        ]
    print("$ " + " ".join(command), file=sys.stderr)
    subprocess.run(command, cwd=REPO, check=True, stdout=sys.stderr)


def load_check(out_dir, name):
    with open(os.path.join(out_dir, f"{name}-check.json")) as f:
        return json.load(f)


def tensor(values, *shape):
    return torch.tensor(values, dtype=torch.float32).reshape(*shape)


def max_abs(a, b):
    return (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs().max().item()


def settings_differences(model, check, expected=None):
    """The exported config's fields that the twin does not share (the twin's settings under
    the Rust field names, by default binarised MNIST 1x28x28 with Bernoulli pixels), and the
    exported optimisers' settings that differ from the twin's: a list of descriptions, empty
    when the two are the same network trained the same way."""
    config = check["config"]
    if expected is None:
        expected = dict(model.config, image_shape={"channels": 1, "height": 28, "width": 28},
                        distribution="Bernoulli")
    differences = [f"{key}: genmodels {config.get(key)!r}, PyTorch {value!r}"
                   for key, value in expected.items() if config.get(key) != value]
    ours = [group for optimizer in model.optimizers() for group in optimizer.param_groups]
    theirs = check["optimizers"]
    if len(ours) != len(theirs):
        return differences + [f"{len(theirs)} optimisers in genmodels, {len(ours)} in PyTorch"]
    for group, optimizer in zip(ours, theirs):
        if optimizer["kind"] != "adam" or optimizer["every"] != 1:
            differences.append(f"optimiser: genmodels {optimizer}, PyTorch Adam on every step")
            continue
        for key, value, expected_value in [
            ("learning rate", optimizer["learning_rate"], group["lr"]),
            ("beta_1", optimizer["betas"][0], group["betas"][0]),
            ("beta_2", optimizer["betas"][1], group["betas"][1]),
            ("eps", optimizer["eps"], group["eps"]),
        ]:
            # genmodels' betas are float32: its 0.9 reads back as 0.8999999762.
            if abs(value - expected_value) > 1e-7 * abs(expected_value):
                differences.append(f"optimiser {key}: genmodels {value!r}, PyTorch {expected_value!r}")
    return differences


def check_autoregressive(out_dir, name):
    """PixelCNN, the Gated PixelCNN, the Row LSTM and the Diagonal BiLSTM alike: same
    configuration and optimiser, same log p(x) at genmodels' weights, and the same after one
    training step on the batch."""
    check = load_check(out_dir, name)
    images = tensor(check["images"], -1, 1, 28, 28)
    model = models.MODELS[name]().load_burn(os.path.join(out_dir, f"{name}.safetensors"))
    differences = settings_differences(model, check)
    for difference in differences:
        print(f"{name}: {difference}", file=sys.stderr)
    with torch.no_grad():
        ll = model.log_prob(images)
    # The same training step as genmodels took (these losses draw no noise): the timed steps
    # do the same work on both sides.
    model.train()
    model.train_step(images, model.optimizers())
    with torch.no_grad():
        ll_after_step = model.log_prob(images)
    return [
        (name, "config and optimiser: fields that differ", len(differences), 0),
        (name, "data: bundled digits, v/255 > 0.5", max_abs(models.bundled_digits(len(images), True), images), 0.0),
        (name, "log p(x) per image (nats)", max_abs(ll, check["log_likelihood"]), LL_TOLERANCE),
        (name, "log p(x) after one training step (nats)", max_abs(ll_after_step, check["log_likelihood_after_step"]), LL_TOLERANCE),
    ]


def check_vae(out_dir):
    check = load_check(out_dir, "vae")
    images = tensor(check["images"], -1, 1, 28, 28)
    model = models.Vae().load_burn(os.path.join(out_dir, "vae.safetensors")).eval()
    eps = tensor(check["eps"], len(images), model.latent_dim)
    with torch.no_grad():
        log_px, kl = model.terms(images, eps)
    return [
        ("vae", "log p(x|z) per image (nats)", max_abs(log_px, check["log_px_given_z"]), LL_TOLERANCE),
        ("vae", "KL(q(z|x) || p(z)) per image (nats)", max_abs(kl, check["kl"]), LL_TOLERANCE),
    ]


def check_dcgan(out_dir):
    check = load_check(out_dir, "dcgan")
    images = tensor(check["images"], -1, 1, 28, 28)
    model = models.Dcgan().load_burn(os.path.join(out_dir, "dcgan.safetensors"))
    # Training mode, as the export: batch norm normalises with each batch's own statistics.
    model.train()
    z = tensor(check["z"], len(images), model.latent_dim)
    with torch.no_grad():
        fake = model.generator(z)
        d_real = model.discriminator(model.scaled(images))
        d_fake = model.discriminator(fake)
        d_loss = model.discriminator_loss(d_real, d_fake).item()
        g_loss = model.generator_loss(d_fake).item()
    return [
        ("dcgan", "data: bundled digits, v/255", max_abs(models.bundled_digits(len(images), False), images), 0.0),
        ("dcgan", "D(x) raw outputs", max_abs(d_real, check["d_real"]), DCGAN_TOLERANCE),
        ("dcgan", "D(G(z)) raw outputs", max_abs(d_fake, check["d_fake"]), DCGAN_TOLERANCE),
        ("dcgan", "discriminator loss", abs(d_loss - check["discriminator_loss"]), DCGAN_TOLERANCE),
        ("dcgan", "generator loss", abs(g_loss - check["generator_loss"]), DCGAN_TOLERANCE),
    ]


def check_ddpm(out_dir):
    """The DDPM's trained network (not the moving average) at fixed steps and noise: same
    configuration and optimiser, same x_t (the schedule), same eps_theta(x_t, t), same
    L_simple."""
    check = load_check(out_dir, "ddpm")
    n = len(check["timesteps"])
    images = tensor(check["images"], n, 1, 28, 28)
    model = models.load_ddpm(os.path.join(out_dir, "ddpm.safetensors")).eval()
    differences = settings_differences(model, check, expected=model.config)
    for difference in differences:
        print(f"ddpm: {difference}", file=sys.stderr)
    timesteps = torch.tensor(check["timesteps"], dtype=torch.int64)
    noise = tensor(check["noise"], n, 1, 28, 28)
    with torch.no_grad():
        noisy = model.schedule.q_sample(model.scaled(images), timesteps, noise)
        predicted = model.network(noisy, timesteps)
        loss = model.simple_loss(model.scaled(images), timesteps, noise).item()
        ddim = model.ddim(tensor(check["ddim_start"], n, 1, 28, 28), check["ddim_steps"], model.network)
    return [
        ("ddpm", "config and optimiser: fields that differ", len(differences), 0),
        ("ddpm", "data: bundled digits, v/255 > 0.5", max_abs(models.bundled_digits(n, True), images), 0.0),
        ("ddpm", "√ᾱ_t and √(1 − ᾱ_t) at the 32 steps (float64, then float32)",
         max(max_abs(model.schedule.sqrt_alpha_bar[timesteps], check["sqrt_alpha_bar"]),
             max_abs(model.schedule.sqrt_one_minus_alpha_bar[timesteps], check["sqrt_one_minus_alpha_bar"])), 0.0),
        ("ddpm", "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε per pixel", max_abs(noisy, tensor(check["noisy"], n, 1, 28, 28)), DDPM_NOISY_TOLERANCE),
        ("ddpm", "ε_θ(x_t, t) per pixel", max_abs(predicted, tensor(check["predicted_noise"], n, 1, 28, 28)), DDPM_EPS_TOLERANCE),
        ("ddpm", "L_simple of the batch", abs(loss - check["loss"]), DDPM_LOSS_TOLERANCE),
        ("ddpm", f"DDIM ({check['ddim_steps']} steps, η = 0) from a fixed x_T, last continuous image per pixel",
         max_abs(ddim, tensor(check["ddim_output"], n, 1, 28, 28)), DDPM_DDIM_TOLERANCE),
    ]


def check(out_dir, name):
    """The agreement rows of model `name`: (model, quantity, difference, tolerance)."""
    if name in AUTOREGRESSIVE:
        return check_autoregressive(out_dir, name)
    return {"vae": check_vae, "dcgan": check_dcgan, "ddpm": check_ddpm}[name](out_dir)


def agreement(args):
    """Runs the export and the checks; prints a table; returns whether every row passed."""
    out_dir = args.export_dir or tempfile.mkdtemp(prefix="genmodels-reference-")
    os.makedirs(out_dir, exist_ok=True)
    export(args, out_dir)
    names = [name for name in models.MODELS if not args.models or name in args.models]
    rows = [row for name in names for row in check(out_dir, name)]
    print(f"## Agreement: genmodels weights loaded into PyTorch (export in {out_dir})\n")
    print("| model | quantity | max abs difference | tolerance | |")
    print("|---|---|---|---|---|")
    passed = True
    for model, quantity, difference, tolerance in rows:
        ok = difference <= tolerance
        passed &= ok
        quantity = quantity.replace("|", "\\|")  # a bar would end the Markdown cell
        print(f"| {model} | {quantity} | {difference:.3g} | {tolerance:g} | {'ok' if ok else 'FAIL'} |")
    print()
    return passed, rows


# ---------------------------------------------------------------------------------------------
# Timings


def run_json(command, what, env=None):
    """Runs a bench command and returns its one JSON result object."""
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    results = json.loads(done.stdout)
    if not results:
        raise SystemExit(f"{what} printed no result: {' '.join(command)}")
    return results[0]


def genmodels_result(args, model, op, batch):
    if args.rust_json:
        # A stub: results read from a file instead of running the CLI (for testing the runner).
        with open(args.rust_json) as f:
            for result in json.load(f):
                if (result["model"], result["op"], result["batch"]) == (model, op, batch):
                    return result
        raise SystemExit(f"{args.rust_json} has no result for {model} {op} batch {batch}")
    command = [
        args.genmodels_bin, "bench", "--model", model, "--backend", args.backend,
        "--op", op, "--batch", str(batch), "--kernels", "on", "--json",
    ]
    return run_json(command + shared_options(args, op), "genmodels bench")


def torch_result(args, model, op, batch):
    command = [
        sys.executable, os.path.join(HERE, "torch_bench.py"), "--model", model,
        "--op", op, "--batch", str(batch), "--json",
    ]
    if args.torch_threads:
        command += ["--threads", str(args.torch_threads)]
    if args.torch_device != "cpu":
        command += ["--device", args.torch_device]
    return run_json(command + shared_options(args, op), "torch_bench.py", env=torch_env(args))


# What caps PyTorch's CPU kernels at AVX2 (ATen's own dispatch, oneDNN's and MKL's).
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def torch_env(args):
    """The environment of PyTorch's side: with `--avx2`, its kernels capped at AVX2."""
    env = dict(os.environ)
    if args.avx2:
        env.update(AVX2_ONLY)
    return env


def shared_options(args, op):
    """Options both bench commands take alike."""
    options = []
    if args.steps:
        options += ["--steps", str(args.steps)]
    warm_up = args.warm_up if args.warm_up is not None else WARM_UP.get(op)
    if warm_up is not None:
        options += ["--warm-up", str(warm_up)]
    return options


def median_of(results, key):
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def timings(args):
    jobs = [job if not args.batch else (*job[:3], args.batch) for job in JOBS]
    jobs = [job for job in jobs if not args.ops or job[1] in args.ops]
    jobs = [job for job in jobs if not args.models or job[0] in args.models]
    rust = {job: [] for job in jobs}
    reference = {job: [] for job in jobs}
    for repetition in range(args.repetitions):
        # One PyTorch measurement per (model, op, batch) and repetition, shared by the
        # genmodels ops compared with it (both samplers against PyTorch's naive one).
        torch_this_round = {}
        for job in jobs:
            model, rust_op, torch_op, batch = job
            print(f"repetition {repetition + 1}/{args.repetitions}: {model} {rust_op} batch {batch}", file=sys.stderr)
            rust[job].append(genmodels_result(args, model, rust_op, batch))
            key = (model, torch_op, batch)
            if key not in torch_this_round:
                torch_this_round[key] = torch_result(args, model, torch_op, batch)
            reference[job].append(torch_this_round[key])
    rows = []
    for job in jobs:
        model, rust_op, torch_op, batch = job
        ours = median_of(rust[job], "images_per_second")
        theirs = median_of(reference[job], "images_per_second")
        memory_ours = median_of(rust[job], "peak_memory_bytes")
        memory_theirs = median_of(reference[job], "peak_memory_bytes")
        rows.append({
            "model": model,
            "genmodels_op": rust_op,
            "pytorch_op": torch_op,
            "batch": batch,
            "genmodels_images_per_second": ours,
            "pytorch_images_per_second": theirs,
            "ratio": ours / theirs,
            "genmodels_peak_memory_bytes": memory_ours,
            "pytorch_peak_memory_bytes": memory_theirs,
            "memory_ratio": memory_ours / memory_theirs if memory_ours and memory_theirs else None,
            "genmodels_runs": rust[job],
            "pytorch_runs": reference[job],
        })
    return rows


def mib(value):
    return "–" if value is None else f"{value / 2**20:.1f}"


def print_timings(rows, repetitions):
    print(f"## Throughput: median of {repetitions} alternating repetitions\n")
    print("| model | op (genmodels vs PyTorch) | batch | genmodels images/s | PyTorch images/s "
          "| genmodels / PyTorch | genmodels peak MiB | PyTorch peak MiB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        op = r["genmodels_op"] if r["genmodels_op"] == r["pytorch_op"] else f"{r['genmodels_op']} vs {r['pytorch_op']}"
        memory_ratio = "–" if r["memory_ratio"] is None else f"{r['memory_ratio']:.2f}"
        print(f"| {r['model']} | {op} | {r['batch']} | {r['genmodels_images_per_second']:.2f} "
              f"| {r['pytorch_images_per_second']:.2f} | {r['ratio']:.2f} "
              f"| {mib(r['genmodels_peak_memory_bytes'])} | {mib(r['pytorch_peak_memory_bytes'])} | {memory_ratio} |")
    print()


def peak_shares(args, rows):
    """Achieved training FLOP/s of both sides (the twin's step counted by PyTorch's
    FlopCounterMode) and their shares of each side's own matrix-product peak: gemm's for
    genmodels (`genmodels bench --gemm-peak`), torch.mm's for PyTorch, measured now."""
    training = [r for r in rows if r["genmodels_op"] == "train_step"]
    # The peaks are the CPU's matrix products: no yardstick for a GPU.
    if not training or args.rust_json or args.backend != "flex" or args.torch_device != "cpu":
        return None
    done = subprocess.run([args.genmodels_bin, "bench", "--gemm-peak", "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    gemm = json.loads(done.stdout)
    probe = ("import flops, json, torch; "
             + (f"torch.set_num_threads({args.torch_threads}); " if args.torch_threads else "")
             + "print(json.dumps(flops.torch_matmul_peak()))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=HERE, capture_output=True, text=True,
                          check=True, env=torch_env(args))
    torch_peak, torch_size = json.loads(done.stdout)
    shares = {"gemm_peak": gemm, "torch_peak_flops_per_second": torch_peak,
              "torch_peak_size": torch_size, "models": []}
    for r in training:
        per_image = flops.training_flops_per_image(r["model"], r["batch"])
        ours = per_image * r["genmodels_images_per_second"]
        theirs = per_image * r["pytorch_images_per_second"]
        shares["models"].append({
            "model": r["model"], "training_flops_per_image": per_image,
            "genmodels_flops_per_second": ours, "pytorch_flops_per_second": theirs,
            "genmodels_share_of_peak": ours / gemm["gemm_peak_flops_per_second"],
            "pytorch_share_of_peak": theirs / torch_peak,
        })
    return shares


def print_peak_shares(shares):
    gemm = shares["gemm_peak"]
    print("## Training FLOP/s and share of the matrix-product peak\n")
    print(f"Peaks measured in this run: gemm ({gemm['kernel']} kernel, {gemm['threads']} threads) "
          f"{gemm['gemm_peak_flops_per_second'] / 1e9:.1f} GFLOP/s at {gemm['size']}×{gemm['size']}; "
          f"torch.mm {shares['torch_peak_flops_per_second'] / 1e9:.1f} GFLOP/s at "
          f"{shares['torch_peak_size']}×{shares['torch_peak_size']}. FLOPs per image: PyTorch's "
          "FlopCounterMode over one training step of the twin (matrix products and convolutions, "
          "forward and backward; masked taps counted as the dense convolution computes them).\n")
    print("| model | training MFLOP/image | genmodels GFLOP/s | share of gemm peak "
          "| PyTorch GFLOP/s | share of torch.mm peak |")
    print("|---|---|---|---|---|---|")
    for m in shares["models"]:
        print(f"| {m['model']} | {m['training_flops_per_image'] / 1e6:.1f} "
              f"| {m['genmodels_flops_per_second'] / 1e9:.1f} | {100 * m['genmodels_share_of_peak']:.0f}% "
              f"| {m['pytorch_flops_per_second'] / 1e9:.1f} | {100 * m['pytorch_share_of_peak']:.0f}% |")
    print()


# ---------------------------------------------------------------------------------------------


def cargo_target_dir():
    """Where cargo builds this workspace (CARGO_TARGET_DIR and .cargo/config.toml apply)."""
    try:
        done = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                              cwd=REPO, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)["target_directory"]
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return os.path.join(REPO, "target")


def machine(torch_device="cpu"):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "genmodels_commit": commit or None,
        "vector_extensions": vector_extensions(),
        "gpu": torch.cuda.get_device_name(0) if torch_device != "cpu" else None,
    }


def vector_extensions():
    """The CPU's vector extensions that decide which kernels run (as genmodels bench names
    them), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    names = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"]
    return [name for name in names if name in flags]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5, help="alternating repetitions (default 5)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--genmodels-bin", help="the genmodels CLI (default: release/genmodels "
                        "in cargo's target directory; build it with cargo build --release -p genmodels-cli)")
    parser.add_argument("--export-bin", help="a prebuilt reference_export example binary "
                        "(default: cargo run --release --example reference_export)")
    parser.add_argument("--export-dir", help="where the export goes (default: a new temporary directory)")
    parser.add_argument("--steps", type=int, help="timed runs per measurement, both sides (default: "
                        "as genmodels bench: 5 for training and likelihood, 3 cached sampling, 1 naive)")
    parser.add_argument("--warm-up", type=int, help="untimed runs first, both sides (default: 1, and 0 for naive sampling)")
    parser.add_argument("--models", nargs="+", choices=sorted(models.MODELS), help="only these models "
                        "(checks and timings; the export writes them all)")
    parser.add_argument("--ops", nargs="+", choices=sorted({job[1] for job in JOBS}), help="only these genmodels ops")
    parser.add_argument("--torch-threads", type=int, help="PyTorch threads (default: PyTorch's own, all cores)")
    parser.add_argument("--avx2", action="store_true", help="cap PyTorch's kernels at AVX2 "
                        "(ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS); pair with "
                        "--genmodels-bin \"$(benches/avx2.sh)\" to measure both sides without AVX-512")
    parser.add_argument("--backend", default="flex", choices=["flex", "ndarray", "wgpu", "cuda"],
                        help="genmodels' backend (default flex)")
    parser.add_argument("--torch-device", default="cpu", help="PyTorch's device: cpu (default) or cuda")
    parser.add_argument("--batch", type=int, help="every job at this batch (default: each job's own, 32 or 16)")
    parser.add_argument("--skip-check", action="store_true", help="skip the agreement check")
    parser.add_argument("--check-only", action="store_true", help="run the agreement check only")
    parser.add_argument("--rust-json", help="testing: read genmodels results from this JSON file "
                        "(an array as `genmodels bench --json` prints) instead of running the CLI")
    args = parser.parse_args()
    if not args.genmodels_bin and not args.rust_json and not args.check_only:
        args.genmodels_bin = os.path.join(cargo_target_dir(), "release", "genmodels")
        if not os.path.exists(args.genmodels_bin):
            raise SystemExit(f"{args.genmodels_bin} is missing: cargo build --release -p genmodels-cli")

    info = machine(args.torch_device)
    if args.torch_threads:
        info["torch_threads"] = args.torch_threads
    where = "CPU" if args.torch_device == "cpu" else f"{args.torch_device}: {info['gpu']}"
    print(f"# genmodels vs PyTorch ({where}), side by side\n")
    print(f"- CPU: {info['cpu']}, {info['cores']} cores")
    print(f"- PyTorch {info['torch']}, threads: {info['torch_threads']}"
          f"{'' if args.torch_threads else ' (its default, torch.get_num_threads())'}; "
          f"Python {info['python']}")
    print(f"- genmodels {info['genmodels_commit']}, backend {args.backend}; PyTorch on {args.torch_device}")
    print(f"- vector extensions: {' '.join(info['vector_extensions']) or 'none detected'}"
          f"{'; both sides capped at AVX2 (--avx2)' if args.avx2 else ''}")
    load = info["load_average_at_start"]
    print(f"- load average (1 min) before the run: {'n/a' if load is None else f'{load:.2f}'}\n")
    if load is not None and load > BUSY_LOAD:
        print(f"warning: the machine is busy (load {load:.2f}): PyTorch's OpenMP threads slow down "
              "by up to 10x when other processes hold the cores, so the timings will not be fair",
              file=sys.stderr)
    sys.stdout.flush()

    results = {"machine": info}
    if not args.skip_check:
        passed, rows = agreement(args)
        results["agreement"] = [
            {"model": m, "quantity": q, "max_abs_difference": d, "tolerance": t, "passed": d <= t}
            for m, q, d, t in rows
        ]
        if not passed:
            print("agreement check FAILED: the PyTorch networks do not compute genmodels' numbers", file=sys.stderr)
            write(args.out, results)
            return 1
    if not args.check_only:
        results["repetitions"] = args.repetitions
        results["timings"] = timings(args)
        print_timings(results["timings"], args.repetitions)
        shares = peak_shares(args, results["timings"])
        if shares:
            results["peak_shares"] = shares
            print_peak_shares(shares)
    write(args.out, results)
    return 0


def write(path, results):
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
        print(f"results written to {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
