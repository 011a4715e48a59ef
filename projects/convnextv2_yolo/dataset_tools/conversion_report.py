"""The report of the dataset converters: what a conversion skipped or changed, by kind."""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List

# problems listed per kind in the printed report (the rest are counted)
MAX_LISTED = 20


@dataclass
class ConversionReport:
    """What a conversion skipped or changed, by kind, in the order found.

    Attributes:
        items (dict[str, list[str]]): Kind -> ``file[:row]: reason`` lines.
    """
    items: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, line: str) -> None:
        self.items[kind].append(line)

    def count(self, kind: str) -> int:
        return len(self.items.get(kind, ()))

    def format(self, max_listed: int = MAX_LISTED) -> str:
        """The report as text: per kind, its count and up to ``max_listed`` lines."""
        if not self.items:
            return 'Everything was converted.'
        out = []
        for kind, lines in self.items.items():
            out.append(f'{kind}: {len(lines)}')
            out += [f'  {line}' for line in lines[:max_listed]]
            if len(lines) > max_listed:
                out.append(f'  ... and {len(lines) - max_listed} more')
        return '\n'.join(out)
