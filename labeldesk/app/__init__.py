"""Operations the GUI runs: small Qt-free functions and state over ``labeldesk.core``.

Nothing here imports Qt; the GUI calls these on worker threads and shows what they return.
"""
