"""The scheduler layer: the function registry and its Redis state, one node's warm pool of
microVMs, the async queue, the capabilities hostcalls reach, and the server roles built of them.

Subpackages, one concern each, and what each may import of the others (the shared modules
:mod:`scheduler.errors`, :mod:`scheduler.model` and :mod:`scheduler.settings` are everyone's,
and import no subpackage)::

    roles      -> scaling, pool, registry, asyncq, hostcalls, state   (the server roles, composed)
    scaling    -> pool, registry                                      (how many VMs; admission)
    pool       -> hostcalls                                           (one node's microVMs)
    asyncq     -> state                                               (the async call queue)
    registry   -> hostcalls, state                                    (functions and versions)
    hostcalls  -> state                                               (what a call may reach)
    state      -> (nothing of the scheduler but the shared modules)   (Redis: keys, scripts)

Three modules touch ``unikernel``: :mod:`scheduler.pool.sandbox` (the pool's seam to its VMs),
:mod:`scheduler.roles.node` (the node's composition) and :mod:`scheduler.state.redis_server`
(the embedded redis-server is a child process, as a VM is).

The gateway imports the names a subpackage's ``__init__`` lists in ``__all__``, or the
shared modules, never a module inside a subpackage (tests and benches may reach further).
``tests/test_layers.py`` checks all three rules.
"""
