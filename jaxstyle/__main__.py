from jaxstyle.cli import run

run()
