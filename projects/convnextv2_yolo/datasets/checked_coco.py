"""COCO dataset that fails early, naming the file or key at fault."""
import os.path as osp
from typing import Callable, List

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` with checks before any training starts.

    mmdet silently yields an empty dataset when the annotation file lacks the
    COCO keys, and drops every box of a class whose name is not among the
    file's categories; this raises instead:

    - ``FileNotFoundError`` naming a missing annotation file or image folder;
    - ``ValueError`` naming the file when it is not COCO detection JSON
      (``images`` / ``annotations`` / ``categories``);
    - ``ValueError`` naming ``metainfo.classes`` entries absent from the
      file's categories, with the categories it has.
    """

    def load_data_list(self) -> List[dict]:
        if self.backend_args is None:  # local files: check the paths first
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'annotation file not found: {self.ann_file} '
                                        f'(data_root={self.data_root!r}, ann_file key)')
            img_dir = self.data_prefix.get('img', '')
            if img_dir and not osp.isdir(img_dir):
                raise FileNotFoundError(f'image folder not found: {img_dir} '
                                        f'(data_root={self.data_root!r}, data_prefix.img key)')
        return super().load_data_list()

    @property
    def COCOAPI(self) -> Callable[[str], COCO]:  # noqa: N802 (mmdet's attribute name)
        def load(path: str) -> COCO:
            try:
                coco = COCO(path)
            except Exception as e:  # json / pycocotools errors on non-COCO files
                raise ValueError(f'{self.ann_file} is not a COCO annotation file: '
                                 f'{type(e).__name__}: {e}') from None
            self._check_coco(coco)
            return coco
        return load

    def _check_coco(self, coco: COCO) -> None:
        missing_keys = [k for k in ('images', 'annotations', 'categories') if k not in coco.dataset]
        if missing_keys:
            raise ValueError(f'{self.ann_file} is not a COCO detection annotation file: '
                             f'missing key(s) {missing_keys}')
        names = [c.get('name') for c in coco.dataset['categories']]
        unknown = [c for c in self.metainfo['classes'] if c not in names]
        if unknown:
            raise ValueError(f'metainfo.classes {unknown} are not categories of {self.ann_file}; '
                             f'its categories are {names}')
