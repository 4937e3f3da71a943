"""A generated surveillance scene for the offline demo and for end-to-end tests.

A fixed camera looks down on a paved walkway. Normal footage: pedestrians walk across at walking
speed, in both directions, with a bobbing gait. The test clip adds one anomaly of the kind UCSD
Ped2 labels (a cart, i.e. a wide object moving several times faster than anybody on foot) during a
known frame range, so the demo can show the scores rising exactly where the ground truth says.

Nothing here is used to report accuracy on a benchmark: it exists so `vadistill demo` runs on a
fresh machine with no download.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SceneClip:
    """A generated clip: (T, H, W, 3) uint8 RGB frames, frame labels and pixel masks (1 = anomalous)."""

    frames: np.ndarray
    labels: np.ndarray  # (T,) uint8
    masks: np.ndarray  # (T, H, W) bool


def draw_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Grey pavement with slab joints, a lawn strip and sensor noise texture, (H, W, 3) float32."""
    background = np.full((height, width, 3), 150.0, dtype=np.float32)
    slab = max(8, width // 12)
    for x in range(0, width, slab):
        background[:, x : x + 1] -= 25
    for y in range(0, height, slab):
        background[y : y + 1, :] -= 25
    lawn = height // 6
    background[:lawn] = (95, 120, 90)
    background[-lawn:] = (95, 120, 90)
    background += rng.normal(0.0, 6.0, size=(height, width, 1)).astype(np.float32)
    return cv2.GaussianBlur(background, (3, 3), 0)


@dataclass
class Walker:
    """A pedestrian or a cart crossing the scene along a straight line."""

    x: float
    y: float
    vx: float
    vy: float
    height: float
    shade: float
    phase: float
    is_cart: bool = False


def draw_walker(canvas: np.ndarray, mask: np.ndarray, walker: Walker, frame_index: int) -> None:
    """Paint one walker at its current position; mark its pixels in `mask` when it is a cart."""
    x, y, h = walker.x, walker.y, walker.height
    if walker.is_cart:
        # A cart: a wide red box with dark slats on two wheels, drawn fully opaque. Nothing in the
        # normal footage has its size, colour or speed (Ped2's anomalies differ from pedestrians in
        # the same ways).
        half_w, half_h = h * 0.9, h * 0.35
        layer = np.zeros(canvas.shape[:2], dtype=np.uint8)
        cv2.rectangle(layer, (int(x - half_w), int(y - half_h)), (int(x + half_w), int(y + half_h)), 255, -1)
        for wheel_x in (x - half_w * 0.6, x + half_w * 0.6):
            cv2.circle(layer, (int(wheel_x), int(y + half_h)), max(2, int(h * 0.18)), 255, -1)
        inside = layer > 0
        columns = np.indices(layer.shape)[1]
        slats = ((columns - int(x)) // max(2, int(h * 0.15))) % 2 == 0
        canvas[inside] = (walker.shade, 40.0, 30.0)
        canvas[inside & slats] = (60.0, 25.0, 20.0)
        mask |= inside
        return
    # A pedestrian: head, body and two legs that swing with the gait phase (bobbing of ~1 px).
    bob = np.sin(walker.phase + frame_index * 0.6)
    head_r = max(2, int(h * 0.12))
    body_top = y - h * 0.35
    cv2.circle(canvas, (int(x), int(body_top - head_r)), head_r, (walker.shade * 1.3,) * 3, -1)
    cv2.ellipse(canvas, (int(x), int(y)), (max(2, int(h * 0.16)), int(h * 0.35)), 0, 0, 360,
                (walker.shade, walker.shade * 0.9, walker.shade * 1.1), -1)
    leg = h * 0.3
    for side in (-1, 1):
        foot = (int(x + side * bob * h * 0.12), int(y + h * 0.35 + leg))
        cv2.line(canvas, (int(x), int(y + h * 0.3)), foot, (walker.shade * 0.6,) * 3, max(1, int(h * 0.07)))


def spawn_pedestrian(height: int, width: int, rng: np.random.Generator) -> Walker:
    going_right = rng.random() < 0.5
    speed = rng.uniform(0.8, 1.6) * width / 240.0
    size = rng.uniform(0.16, 0.22) * height
    walkway = (height * 0.3, height * 0.72)
    return Walker(
        x=-10.0 if going_right else width + 10.0,
        y=float(rng.uniform(*walkway)),
        vx=speed if going_right else -speed,
        vy=float(rng.uniform(-0.15, 0.15)),
        height=size,
        shade=float(rng.uniform(40, 110)),
        phase=float(rng.uniform(0, 2 * np.pi)),
    )


def render_scene(
    num_frames: int,
    height: int = 144,
    width: int = 240,
    num_pedestrians: int = 5,
    cart_frames: tuple[int, int] | None = None,
    seed: int = 0,
    background_seed: int | None = None,
) -> SceneClip:
    """Render a clip of the walkway scene.

    Args:
        num_frames: length of the clip.
        height, width: frame size.
        num_pedestrians: pedestrians kept in view at any time (new ones enter as others leave).
        cart_frames: (first, last) frame during which a fast cart crosses the walkway (the anomaly);
            None for normal footage.
        seed: the clip is a pure function of its arguments.
        background_seed: seed of the pavement texture; clips of one fixed camera share it
            (None: the clip's own seed, i.e. a different camera per clip).
    """
    rng = np.random.default_rng(seed)
    background = draw_background(height, width, rng if background_seed is None else np.random.default_rng(background_seed))
    walkers = [spawn_pedestrian(height, width, rng) for _ in range(num_pedestrians)]
    for walker in walkers:  # start them spread over the scene, not all at the edge
        walker.x = float(rng.uniform(0, width))
    cart: Walker | None = None
    if cart_frames is not None:
        first, last = cart_frames
        span = max(1, last - first)
        cart = Walker(x=-0.1 * width, y=height * 0.5, vx=1.2 * width / span, vy=0.0,
                      height=height * 0.22, shade=200.0, phase=0.0, is_cart=True)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((num_frames, height, width), dtype=bool)
    noise_rng = np.random.default_rng(seed + 1)
    for t in range(num_frames):
        canvas = background.copy()
        for index, walker in enumerate(walkers):
            draw_walker(canvas, masks[t], walker, t)
            walker.x += walker.vx
            walker.y += walker.vy
            if walker.x < -20 or walker.x > width + 20:
                walkers[index] = spawn_pedestrian(height, width, rng)
        if cart is not None and cart_frames[0] <= t <= cart_frames[1]:
            cart.x = -0.1 * width + cart.vx * (t - cart_frames[0])
            draw_walker(canvas, masks[t], cart, t)
        canvas += noise_rng.normal(0.0, 2.0, size=canvas.shape).astype(np.float32)  # sensor noise
        frames[t] = np.clip(canvas, 0, 255).astype(np.uint8)
    labels = masks.reshape(num_frames, -1).any(axis=1).astype(np.uint8)
    return SceneClip(frames=frames, labels=labels, masks=masks)


def demo_clips(height: int = 144, width: int = 240, num_train: int = 600, num_test: int = 240,
               seed: int = 0) -> tuple[list[np.ndarray], SceneClip]:
    """Normal training clips (three camera sessions) and one test clip with a cart crossing its middle third."""
    per_clip = num_train // 3
    camera = seed + 12345  # one fixed camera: every clip shares its background, the people differ
    train = [render_scene(per_clip, height, width, seed=seed + 10 * k, background_seed=camera).frames for k in range(3)]
    cart = (num_test // 3, 2 * num_test // 3)
    test = render_scene(num_test, height, width, cart_frames=cart, seed=seed + 1000, background_seed=camera)
    return train, test
