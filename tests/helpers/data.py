"""Where the tests find the shared real dataset (outside the repository; absent on some machines)."""
import os
import os.path as osp

import pytest

from .paths import ROOT

# ../shared/datasets/license_plates beside the clone (CONVNEXTV2_YOLO_LICENSE_PLATES moves it)
LICENSE_PLATES = os.environ.get('CONVNEXTV2_YOLO_LICENSE_PLATES',
                                osp.join(osp.dirname(ROOT), 'shared', 'datasets', 'license_plates'))
needs_license_plates = pytest.mark.skipif(not osp.isfile(osp.join(LICENSE_PLATES, 'data.yaml')),
                                          reason=f'the license_plates dataset is not at {LICENSE_PLATES}')
