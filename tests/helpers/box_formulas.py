"""Box formulas written out with plain floats, the independent side of the loss and assigner tests."""
import math


def ciou_scalar(a, b, eps=1e-7):
    """Reference CIoU of two (x1, y1, x2, y2) boxes, written out with floats."""
    w1, h1 = a[2] - a[0], a[3] - a[1] + eps
    w2, h2 = b[2] - b[0], b[3] - b[1] + eps
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b[0] + b[2] - a[0] - a[2])**2 + (b[1] + b[3] - a[1] - a[3])**2) / 4
    v = 4 / math.pi**2 * (math.atan(w2 / h2) - math.atan(w1 / h1))**2
    alpha = v / (v - iou + 1 + eps)
    return iou - (rho2 / c2 + v * alpha)
