"""Constants and initial states of the bench/ad benchmarks B1-B3.

The single Python source of truth for every peer; it transcribes
bench/ad/SPEC.md, which the C implementations follow. Everything here is
plain Python floats computed with the math module (glibc's libm, the same one
the C code calls), so all peers start from bit-identical inputs.
"""

import math

# --- B1 chain1d ----------------------------------------------------------------
# N masses on a line, mass i at x_i, anchored to a wall at 0 by spring 0.
# Spring i joins mass i-1 (the wall, x_{-1} = 0, for i = 0) and mass i; its
# tension is s_i = k_i * (x_i - x_{i-1} - L) (positive when stretched).
# Sign convention (Newton's third law): a stretched spring pulls mass i back
# toward the wall and pulls mass i-1 forward, so
#     f_i = -s_i + s_{i+1} - c * v_i        (s_N = 0: the last mass is free)
# Semi-implicit Euler, T steps: v += dt * f / m; x += dt * v   (f from the old x, v)
# Loss: 1/2 * sum_i (x_T,i - (i+1) * L)^2; gradient with respect to all k_i.
CHAIN_M = 1.0
CHAIN_C = 0.5
CHAIN_L = 1.0
CHAIN_DT = 1e-3
CHAIN_SIZES = {"S": (64, 1024), "M": (256, 4096), "L": (1024, 10000)}


def chain_k(n):
    return [100.0 + 10.0 * math.cos(0.3 * i) for i in range(n)]


def chain_x0(n):
    return [(i + 1) * CHAIN_L * (1.0 + 0.01 * math.sin(i)) for i in range(n)]


def chain_target(n):
    return [(i + 1) * CHAIN_L for i in range(n)]


# --- B2 mass_spring_simple (DiffTaichi examples/mass_spring_simple.py) ---------
MSS_STEPS = 1024          # stored states x[0..1023]: 1023 updates, loss on x[1023]
MSS_DT = 1e-3
MSS_MASS = 1.0
MSS_STIFFNESS = 10.0
MSS_DAMPING = 20.0        # v is scaled by exp(-dt * damping) each update
MSS_FRICTION = 0.01       # wall at x = 0.4: friction projection
MSS_WALL_X = 0.4
MSS_LENGTH_EPS = 1e-4     # length = |x_a - x_b| + 1e-4
MSS_TARGET_AREA = 0.1
MSS_LR = 5.0
MSS_ITERS = 25
MSS_X0 = [(0.3, 0.5), (0.3, 0.4), (0.4, 0.4)]
MSS_SPRINGS = [(0, 1), (1, 2), (2, 0)]                     # (a, b)
MSS_REST0 = [0.1, 0.1, 0.1 * 2 ** 0.5]                     # optimised


# --- B3 mass_spring robot (DiffTaichi examples/mass_spring.py, robot 0 = robotA)
MS_STEPS = 2048 // 3      # 682 stored states: 681 updates, loss on x[681]
MS_DT = 0.004
MS_GRAVITY = -4.8
MS_GROUND = 0.1
MS_DAMPING = 15.0         # v is scaled by exp(-dt * damping) each update
MS_LENGTH_EPS = 1e-4
MS_N_SIN = 10
MS_OMEGA = 10.0
MS_N_HIDDEN = 32
MS_HEAD = 0
MS_GOAL = (0.9, 0.2)
MS_STATE_SCALE = 0.05     # offsets and velocities enter the MLP times 0.05
# Contact: DiffTaichi's advance_no_toi. A mass whose y is below the ground
# (y - ground < 0) and whose new v_y < 0 stops: v = (0, 0), then x += dt * v.
MS_OBJECTS = [(0.2, 0.1), (0.3, 0.13), (0.4, 0.1),
              (0.2, 0.2), (0.3, 0.2), (0.4, 0.2)]
MS_STIFFNESS = 14000.0
MS_ACTUATION = 0.1
MS_LINKS = [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (2, 5),
            (0, 4), (1, 4), (2, 4), (3, 1), (5, 1)]
MS_SEED = 0
MS_ADAM_LR = 0.01
MS_ADAM_B1 = 0.9
MS_ADAM_B2 = 0.999
MS_ADAM_EPS = 1e-8
MS_ADAM_ITERS = 20


def ms_n_objects():
    return len(MS_OBJECTS)


def ms_n_springs():
    return len(MS_LINKS)


def ms_n_input():
    return MS_N_SIN + 4 * len(MS_OBJECTS) + 2


def ms_springs():
    """[(a, b, rest_length, stiffness, actuation)]; rest = initial distance."""
    out = []
    for a, b in MS_LINKS:
        xa, xb = MS_OBJECTS[a], MS_OBJECTS[b]
        rest = ((xa[0] - xb[0]) ** 2 + (xa[1] - xb[1]) ** 2) ** 0.5
        out.append((a, b, rest, MS_STIFFNESS, MS_ACTUATION))
    return out


def ms_sin_inputs():
    """sin(omega * t * dt + 2*pi/n_sin * j) for t = 0..steps-2 (the NN's step)."""
    return [[math.sin(MS_OMEGA * t * MS_DT + 2 * math.pi / MS_N_SIN * j)
             for j in range(MS_N_SIN)] for t in range(MS_STEPS - 1)]


class SplitMix64:
    """SplitMix64 (Steele, Lea, Flood 2014); uniform() = (z >> 11) * 2^-53."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)


def ms_init_params():
    """(w1[n_hidden][n_input], b1[n_hidden], w2[n_springs][n_hidden], b2[n_springs]).

    Uniform with DiffTaichi's standard deviations (it draws np.random.randn):
    w = scale * (2u - 1), scale = std * sqrt(3), u from SplitMix64(seed 0),
    drawn w1 row-major, then w2 row-major. Biases 0.
    """
    nh, ni, ns = MS_N_HIDDEN, ms_n_input(), ms_n_springs()
    rng = SplitMix64(MS_SEED)
    s1 = math.sqrt(2.0 / (nh + ni)) * 2.0 * math.sqrt(3.0)
    s2 = math.sqrt(2.0 / (nh + ns)) * 3.0 * math.sqrt(3.0)
    w1 = [[s1 * (2.0 * rng.uniform() - 1.0) for _ in range(ni)] for _ in range(nh)]
    w2 = [[s2 * (2.0 * rng.uniform() - 1.0) for _ in range(nh)] for _ in range(ns)]
    return w1, [0.0] * nh, w2, [0.0] * ns
