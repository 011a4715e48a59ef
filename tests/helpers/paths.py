"""Where the repository is, seen from the tests."""
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/helpers/ -> repository root
