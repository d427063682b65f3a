"""``[core] hostname_callable`` for the distributed deployment: one host name per component.

All components share one machine; naming each (``DIST_COMPONENT``) lets the ``job`` table tell the
two triggerers apart and ``task_instance.hostname`` the two Celery workers.
"""

from __future__ import annotations

import os
import socket


def component_hostname() -> str:
    return os.environ.get("DIST_COMPONENT") or socket.getfqdn()
