"""The checks of ``benchmarks/gpu_check.py`` (the first GPU run; its docstring says what runs and how).

One module per check (``environment``, ``autocast``, ``training``, ``out_of_core``, ``cone_beam``,
``limited_angle``, ``cuda_tests``), each with one ``check_*(rec, args)``; the shared parts: ``settings``
(the check list, time caps, needed packages), ``record`` (a check's record, strict JSON), ``measure``
(timing, memory peaks, metrics), ``volumes`` (the test volume), ``astra_shim`` (making astra loadable),
``worker`` (one check in its own process) and ``driver`` (the options, the schedule, the JSON)."""
