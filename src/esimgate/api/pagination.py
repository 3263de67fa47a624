"""Page and limit query parameters: validated strictly, never clamped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Query

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def envelope(self, total: int) -> dict[str, Any]:
        return {
            "page": self.page,
            "limit": self.limit,
            "total": total,
            "total_pages": (total + self.limit - 1) // self.limit,
        }


def page_of_50(
    page: int = Query(1, ge=1, le=1_000_000, description="Page number, from 1"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT, description="Items per page (max 100)"),
) -> PageRequest:
    return PageRequest(page, limit)


def page_of_20(
    page: int = Query(1, ge=1, le=1_000_000, description="Page number, from 1"),
    limit: int = Query(20, ge=1, le=MAX_LIMIT, description="Items per page (max 100)"),
) -> PageRequest:
    return PageRequest(page, limit)
