"""Self-update on exit 42, automatic rollback of an upgrade that keeps failing, and the
reload of an agent image that went missing (the supervisor's image steps).

``policy.UpgradeWatch`` is the pure bookkeeping (failures within a window);
``Upgrades`` holds the steps the supervisor takes (it is mixed into
``Supervisor``, which provides ``ctx``, ``clock``, ``backoff``, ``watch`` and
the two rollback settings).
"""

from __future__ import annotations

import logging
import os
import time

from ecs_init.agent import cache
from ecs_init.agent.events import events_path, record_event, rolled_back_images
from ecs_init.agent.health import IMAGE_LOAD, Heartbeat
from ecs_init.agent.identity import AGENT_IMAGE, AGENT_REPOSITORY, AGENT_TAG
from ecs_init.agent.policy import UpgradeWatch, counts_against_upgrade
from ecs_init.core.errors import InitError, first_line
from ecs_init.docker.errors import EngineError, EngineUnavailable
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    from ecs_init.core.backoff import Backoff

log = logging.getLogger("ecs_init.agent.supervisor")


class Upgrades:
    """The upgrade and rollback steps of the supervisor."""

    ctx: HostContext
    clock: Callable[[], float]
    backoff: Backoff
    watch: Optional[UpgradeWatch]
    rollback_failures: int
    rollback_window: float
    heartbeat: Heartbeat
    image_reloaded: bool

    def _upgrade(self) -> bool:
        """Exit 42: load the desired image; False (fall through to backoff) when that fails.

        The image tagged latest before the load is remembered so that an
        upgrade that then fails to stay up can be rolled back.
        """
        ctx = self.ctx
        try:
            path = cache.resolve_desired_image(ctx.paths)
            previous = cache.previous_image(ctx)
            new_id = cache.load_tarball(ctx, path)
        except InitError as err:
            reason = first_line(err)
            log.error("agent upgrade failed: %s; restarting the agent with the image it had", reason)
            record_event(ctx, "upgrade-failed", reason=reason)
            return False
        tarball = os.path.basename(path)
        if new_id in rolled_back_images(ctx) and previous and previous != new_id:
            # The same image was rolled back before: do not loop upgrade -> crash -> rollback.
            try:
                ctx.docker.tag_image(previous, AGENT_REPOSITORY, AGENT_TAG)
            except EngineError as err:
                log.error("cannot restore %s after refusing the upgrade: %s", previous[:19], first_line(err))
            log.error(
                "refusing agent upgrade from %s: image %s was rolled back before; keeping %s "
                "(remove its rollback entry from %s to allow it again)",
                tarball,
                new_id[:19],
                previous[:19],
                events_path(ctx),
            )
            record_event(ctx, "upgrade-refused", image=new_id, tarball=tarball, kept=previous)
            return False
        if previous == new_id:
            log.warning("agent upgrade from %s did not change the agent image (%s)", tarball, new_id[:19])
        else:
            log.info("agent upgraded from %s: %s -> %s", tarball, (previous or "none")[:19], new_id[:19])
        record_event(ctx, "upgrade", previous=previous, new=new_id, tarball=tarball)
        if self.rollback_failures <= 0:
            self.watch = None  # ECS_INIT_ROLLBACK_FAILURES=0: automatic rollback off
        elif previous and previous != new_id:
            self.watch = UpgradeWatch(previous_image=previous, new_image=new_id, started=self.clock())
        # else: the same image again; an earlier upgrade's watch (if any) goes on
        self.backoff.reset()
        return True

    def _maybe_rollback(self, code: int) -> None:
        """Count a failure of an upgraded agent; roll back after too many in the window.

        Only exits that reach backoff count, and of those neither 42 (asking
        for an upgrade is not failing to stay up) nor 0/5 (never reach here).
        """
        watch = self.watch
        if watch is None or not counts_against_upgrade(code):
            return
        now = self.clock()
        if watch.proven(now, self.rollback_window):
            log.info("upgraded agent %s has proved itself: no longer watching it", watch.new_image[:19])
            self.watch = None
            return
        count = watch.record_failure(now, self.rollback_window)
        log.warning(
            "upgraded agent %s failed (exit %d): failure %d of %d within %.0fs before a rollback",
            watch.new_image[:19],
            code,
            count,
            self.rollback_failures,
            self.rollback_window,
        )
        if count >= self.rollback_failures:
            self._rollback(watch, code)

    def _rollback(self, watch: UpgradeWatch, code: int) -> None:
        """Tag the remembered image latest again (or reload the cached tarball); log it loudly."""
        ctx = self.ctx
        self.watch = None
        try:
            ctx.docker.tag_image(watch.previous_image, AGENT_REPOSITORY, AGENT_TAG)
            how = f"re-tagged the previous image {watch.previous_image[:19]}"
        except EngineError as err:
            log.error(
                "cannot re-tag the previous agent image %s (%s); reloading the cached tarball",
                watch.previous_image[:19],
                first_line(err),
            )
            try:
                restored = cache.load_tarball(ctx, ctx.paths.cache_tarball)
                if restored == watch.new_image:
                    raise InitError(f"the cached tarball holds the failed image {restored[:19]} itself")
            except InitError as load_err:
                reason = first_line(load_err)
                log.error(
                    "ROLLBACK FAILED: upgraded agent %s failed %d times within %.0fs and cannot be replaced: %s",
                    watch.new_image[:19],
                    len(watch.failures),
                    self.rollback_window,
                    reason,
                )
                record_event(ctx, "rollback-failed", reason=reason, failed_image=watch.new_image, last_exit_code=code)
                return
            how = f"reloaded the cached tarball ({restored[:19]})"
            restored_image = restored
        else:
            restored_image = watch.previous_image
        log.error(
            "ROLLBACK: upgraded agent %s failed %d times within %.0fs (last exit %d); %s as %s",
            watch.new_image[:19],
            len(watch.failures),
            self.rollback_window,
            code,
            how,
            AGENT_IMAGE,
        )
        record_event(
            ctx, "rollback", failed_image=watch.new_image, restored_image=restored_image, last_exit_code=code, how=how
        )
        self.backoff.reset()

    def _reload_missing_image(self, missing: str) -> None:
        """The agent image is missing at create: load the cached tarball once (then `start` exits 255)."""
        paths = self.ctx.paths
        if self.image_reloaded:
            raise InitError(
                f"the agent image {AGENT_IMAGE} is missing again ({missing}) after reloading {paths.cache_tarball}: "
                "run `amazon-ecs-init reload-cache`"
            )
        self.image_reloaded = True
        log.warning("the agent image %s is missing (%s): reloading %s", AGENT_IMAGE, missing, paths.cache_tarball)
        record_event(self.ctx, "image-reload", reason=missing)
        self.heartbeat.beat(IMAGE_LOAD)
        try:
            cache.load_tarball(self.ctx, paths.cache_tarball)
            cache.write_state(paths, cache.STATE_CACHED)
        except EngineUnavailable:
            raise
        except InitError as err:
            raise InitError(
                f"the agent image {AGENT_IMAGE} is not loaded and reloading the cached tarball failed "
                f"({first_line(err)}): run `amazon-ecs-init reload-cache` (systemd runs pre-start again)"
            )
        except OSError as err:
            raise InitError(f"the agent image {AGENT_IMAGE} is not loaded; cannot record the cache state: {err}")

    def _upgrade_doc(self) -> Optional[dict[str, Any]]:
        """The upgrade being watched, for `status`: wall-clock times (the watch keeps the monotonic clock's)."""
        watch = self.watch
        if watch is None:
            return None
        offset = time.time() - self.clock()
        return {
            "previous_image": watch.previous_image,
            "new_image": watch.new_image,
            "started_at": _iso(watch.started + offset),
            "failures": len(watch.failures),
            "last_failure_at": _iso(watch.failures[-1] + offset) if watch.failures else None,
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
