from medgan3d.cli.main import app

if __name__ == "__main__":
    app()
