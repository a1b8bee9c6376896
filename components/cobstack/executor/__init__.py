"""The executor: signals to orders over the consolidated book, paper trading by default
(see docs/executor.md). Pure core: fills (the paper venue's fill model), routing (smart
order routing), ledger (the account), engine (decisions and risk); I/O: service.
"""
