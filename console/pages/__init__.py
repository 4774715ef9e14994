"""The console's pages, one module each: ``router(console)`` returns the page's routes (an
``APIRouter``) over the shared :class:`~sagestack.console.context.Console`; :mod:`sagestack.console.pages.errors`
registers the error pages on the app."""
